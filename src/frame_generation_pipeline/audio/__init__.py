"""Audio: speech decoded with ffmpeg and turned into the log-mel windows the audio encoder reads."""
