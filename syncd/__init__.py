"""Backup mirror of the primary bucket (the rclone-sync role); see DESIGN.md."""
