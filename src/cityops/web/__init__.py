"""HTML pages (cockpit, workbench, mobile) and their static assets."""
