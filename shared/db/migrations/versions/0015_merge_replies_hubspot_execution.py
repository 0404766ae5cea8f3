"""Join the replies (0012), HubSpot (0013) and campaign-members (0014) branches.

Revision ID: 0015
Revises: 0012, 0013, 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0015"
down_revision = ("0012", "0013", "0014")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
