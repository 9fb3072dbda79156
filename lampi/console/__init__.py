"""The web console (issue 14): a browser front-end on a listener of its own
(``console_port``), served by the same workers as the APIs.

It is a *client* of lampi's own APIs: every action is a request to the Keystone, Swift
or EC2-credentials API of the main listener (``lampi.console.upstream``), sent with the
user's own token, so the console can do nothing its user could not do with ``swift``,
``openstack`` or ``aws``: the same authentication, access decision
(``lampi.http.authz``), quotas, name rules and object lock apply, with no second
implementation to drift. What it reads in-process is read-only: the session token's
validity (``IdentityService.validate``), names for display, the project's limits and
the buckets whose ACLs name the user's project ("shared with you").

Security model (docs/console.md): the session is the Keystone token itself, in an
HttpOnly, SameSite=Strict cookie expiring with it; every POST carries a CSRF token
(HMAC of the session under a server key, compared in constant time); pages are
server-rendered with autoescaping and a strict Content-Security-Policy (scripts and
styles from the console's own static files only).
"""
