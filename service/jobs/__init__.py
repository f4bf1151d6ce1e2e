"""Training jobs: rows in the project database, claimed by training workers that run the
training CLI as a child process (torch-free here). See docs/learning.md."""
