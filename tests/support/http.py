"""One HTTP client for tests with a generous timeout: CI machines can be slow and
loaded, and a test should fail on wrong answers, not on a busy CPU."""

from __future__ import annotations

import httpx

HTTP = httpx.Client(timeout=httpx.Timeout(120.0, connect=30.0))
