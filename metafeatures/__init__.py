"""Dataset ingestion, fingerprints and matchers: dataset -> fingerprint batch -> known dataset."""
