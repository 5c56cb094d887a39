"""Mutations: writing posts."""
