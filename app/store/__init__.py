"""Storage: SQLModel tables and repositories. All SQL lives here."""
