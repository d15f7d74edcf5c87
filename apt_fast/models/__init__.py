"""Model implementations shipped with apt_fast."""
