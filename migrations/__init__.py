"""Schema migrations (Alembic); run them with `alphanode db upgrade`."""
