"""calls.answered_by_external (answered on an outside number), users.locked_until (time-limited
sign-in lockout)

Revision 0002, written 2026-12-03 10:28:16.082914.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answered_by_external', sa.String(length=40), nullable=True))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('answered_by_external')

