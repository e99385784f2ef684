"""A LiveKit agent worker whose voice is shown by the SyncTalk_2D avatar, in the agent's process.

    pip install 'frame-generation-pipeline[livekit]' livekit-plugins-openai livekit-plugins-silero
    export LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... OPENAI_API_KEY=...
    AVATAR_CHECKPOINT=5.pth AVATAR_TEMPLATES=dataset/May AVATAR_ENCODER=audio_visual_encoder.pth \\
        python examples/livekit_avatar.py dev

The model is loaded from local files (nothing is downloaded by this code; the speech plugins are
the user's choice). For an avatar in a process of its own, run `run_worker(generator, url, token)`
there and give the agent `DataStreamAudioOutput(room, destination_identity=...)` as its audio output.
"""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentSession, JobContext, WorkerOptions, cli

from frame_generation_pipeline.integrations.livekit import SyncTalkVideoGenerator, start_in_process


async def entrypoint(ctx: JobContext) -> None:
    """One room: connect, start the avatar beside the agent, then the agent."""
    from livekit.plugins import openai, silero

    await ctx.connect()
    generator = SyncTalkVideoGenerator(checkpoint=os.environ["AVATAR_CHECKPOINT"],
                                       template_dir=os.environ["AVATAR_TEMPLATES"],
                                       audio_encoder=os.environ["AVATAR_ENCODER"])
    session = AgentSession(stt=openai.STT(), llm=openai.LLM(), tts=openai.TTS(), vad=silero.VAD.load())
    runner = await start_in_process(generator, session, ctx.room)
    ctx.add_shutdown_callback(runner.aclose)
    await session.start(agent=Agent(instructions="You are a friendly avatar. Answer briefly."), room=ctx.room)
    await session.generate_reply(instructions="Say hello.")


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
