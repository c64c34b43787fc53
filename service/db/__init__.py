"""The data layer: how statements run on whichever backend `DATABASE_URL` names."""
