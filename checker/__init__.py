"""Firmware package checker (the version check module); see DESIGN.md."""
