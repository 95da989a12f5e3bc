"""Business rules as plain functions over a SQLAlchemy session: each rule lives in one module here.

Tasks call these; they never call Celery, so they are tested without a broker.
"""
