"""Helpers shared by the tests: servers, clients, browsers, test hosts, media."""
