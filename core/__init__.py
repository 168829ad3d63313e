"""Shared plumbing every app may import: errors, schemas, paging, request context, text and id
rules, request parsing, fixed-SQL helpers, logging. Imports no app and nothing from config/."""
