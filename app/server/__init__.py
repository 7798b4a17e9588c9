"""Application assembly: routes, plugins, CLI commands, start-up."""
