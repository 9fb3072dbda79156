"""Who is asking, and may they? Protocol adapters build a Principal; the core decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from lampi.core import errors


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    user_name: str
    project_id: str | None
    roles: tuple[str, ...] = ()
    is_cloud_admin: bool = False  # admin role in the designated admin project
    audit_id: str = ""
    expires_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def can_write(self) -> bool:
        return "admin" in self.roles or "member" in self.roles

    @property
    def can_read(self) -> bool:
        return bool({"admin", "member", "reader"} & set(self.roles))


def authorize_account(principal: Principal | None, project_id: str, write: bool) -> None:
    """Raise unless ``principal`` may read (or write) the account of ``project_id``."""
    if principal is None:
        raise errors.Unauthorized()
    if principal.is_cloud_admin:
        return
    if principal.project_id != project_id:
        raise errors.Forbidden()
    if write and not principal.can_write:
        raise errors.Forbidden()
    if not principal.can_read:
        raise errors.Forbidden()
