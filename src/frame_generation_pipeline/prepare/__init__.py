"""Templates from a video: frames at the template rate, faces found and tracked, 110-point landmarks."""
