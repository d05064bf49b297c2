"""`python -m edgeprune_agent` runs the agent command line."""
from .cli import main

raise SystemExit(main())
