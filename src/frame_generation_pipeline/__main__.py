"""`python -m frame_generation_pipeline` runs the `frame-gen` command line."""

from .app.cli import main

raise SystemExit(main())
