"""Join the branches developed side by side (policy, deliverability, mail, research/CRM) so
later revisions have one parent.

Revision ID: 0011
Revises: 0004, 0008, 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0011"
down_revision = ("0004", "0008", "0010")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
