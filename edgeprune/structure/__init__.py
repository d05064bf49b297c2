"""Model surgery: dependency graphs, physical channel and block removal, channel slices, width grids."""
