"""CEL backfill: requests.source, calls.source, cel_marks

Revision 0005, written 2026-12-03.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cel_marks',
        sa.Column('pbx_id', sa.String(length=40), nullable=False),
        sa.Column('high_water', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('pbx_id'),
    )
    # Plain ALTER TABLE (SQLite 3.35+ has ADD/DROP COLUMN): a batch copy of ``requests``
    # would break the triggers that guard closed requests.
    for table in ('requests', 'calls'):
        op.add_column(table, sa.Column('source', sa.String(length=8), server_default='ami',
                                       nullable=False))


def downgrade() -> None:
    for table in ('calls', 'requests'):
        op.drop_column(table, 'source')
    op.drop_table('cel_marks')
