"""Credentials per company: ``company_credentials`` (issue 16).

One row per company that brings its own Cal.com and/or Retell credentials. Every secret lives only in
``sealed``, a Fernet token over a JSON object (``VOICEBOOK_SECRET_KEY``); the plain columns hold what may
be shown (base URL, team id, OAuth client id, auth kind) and the connection ``state``
(``connected`` | ``disconnected``) with its reason and time.

``rate_budgets``: the token bucket of each Cal.com credential (keyed by a hash, never the credential),
shared by every worker when Redis is not configured.

``ix_phone_numbers_company_id``: so that loading 10 000 companies stays linear.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voicebook.db.base import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "company_credentials",
        sa.Column(
            "company_id",
            sa.Integer(),
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("calcom_base_url", sa.String(255), nullable=True),
        sa.Column("calcom_team_id", sa.BigInteger(), nullable=True),
        sa.Column("calcom_auth", sa.String(16), nullable=False),
        sa.Column("oauth_client_id", sa.String(200), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), server_default=sa.text("'connected'"), nullable=False),
        sa.Column("state_reason", sa.String(200), nullable=True),
        sa.Column("state_changed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "rate_budgets",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("refilled_at", sa.Double(), nullable=False),
        sa.Column("blocked_until", sa.Double(), nullable=False),
    )

    # `tenants load` deletes each company's stale numbers by company_id: without an index that is a
    # scan of every number per company, quadratic for 10 000 companies.
    op.create_index("ix_phone_numbers_company_id", "phone_numbers", ["company_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        # InnoDB let this index serve the foreign key (dropping its own): drop the key with it and
        # add it back, which gives it its implicit index again, as 0001 left it.
        op.drop_constraint("fk_phone_numbers_company_id_companies", "phone_numbers", type_="foreignkey")
        op.drop_index("ix_phone_numbers_company_id", table_name="phone_numbers")
        op.create_foreign_key(
            "fk_phone_numbers_company_id_companies",
            "phone_numbers",
            "companies",
            ["company_id"],
            ["id"],
            ondelete="CASCADE",
        )
    else:
        op.drop_index("ix_phone_numbers_company_id", table_name="phone_numbers")
    op.drop_table("rate_budgets")
    op.drop_table("company_credentials")
