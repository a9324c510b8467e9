"""requests.complaint_justified, ix_requests_deferred_due

Revision 0007: a complaint's verdict (justified / not) for the quarterly analytical material;
an index for deferred answers due in a period (reports, call-back lists). Chained after 0005
(merged from main meanwhile; the task named 0003).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint_justified', sa.Boolean(), nullable=True))
    # Outside the batch: on SQLite a batch with an index rebuilds the table (and its triggers).
    op.create_index('ix_requests_deferred_due', 'requests', ['deferred_due_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_requests_deferred_due', table_name='requests')
    # A plain DROP COLUMN (SQLite >= 3.35): a batch would rebuild requests, which the
    # closed-request triggers of other tables name.
    op.drop_column('requests', 'complaint_justified')
