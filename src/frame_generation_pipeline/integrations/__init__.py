"""Adapters of the live avatar into voice-agent frameworks (Pipecat, LiveKit Agents); each framework is
imported only by its own module."""
