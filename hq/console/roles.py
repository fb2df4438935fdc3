"""The console's roles and languages: plain constants, importable without the web stack."""

from __future__ import annotations

from typing import Final

OPERATOR: Final = "operator"
FLEET_ADMIN: Final = "fleet_admin"
AUDITOR: Final = "auditor"
ROLES: Final = (OPERATOR, FLEET_ADMIN, AUDITOR)
LANGUAGES: Final = ("en", "fr", "ar")
