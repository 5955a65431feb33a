"""Reusable network pieces shared by several models (proposal maps, masked conv stacks)."""
