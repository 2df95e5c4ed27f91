"""The `/reports` page: pure HTML and inline SVG built from a `bot.services.reports.Report`."""
