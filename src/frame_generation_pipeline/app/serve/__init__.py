"""The live avatar server: WebRTC media, HTTP routes and the page (frame-gen serve)."""
