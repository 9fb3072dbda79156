"""The app assembly above the front-ends: the aiohttp application (app), its
connection guard (guard) and the server processes (server)."""
