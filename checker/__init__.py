"""The version check module: validate firmware packages as they land, record, publish for devices."""
