"""The portfolios metarec ships (package data): ``demo`` is the default one the CLI, API and service serve."""
