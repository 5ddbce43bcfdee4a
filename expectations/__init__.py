"""great-expectations suites (JSON) and the factory that turns them into Dagster asset checks."""
