"""Stand-in for the course's ``plotter`` module, which the fashion script imports and does not use."""
