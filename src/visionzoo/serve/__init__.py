"""HTTP service and browser page: `visionzoo serve` (issue 14). Imports tasks, never the reverse."""
