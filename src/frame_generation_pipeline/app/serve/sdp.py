"""What makes a visitor's SDP offer unusable, said so that the client can act on it (aiortc's own
errors for such offers name internals: "None is not in list")."""

from __future__ import annotations

#: What each section of an offer needs, session-level lines counting for every section.
_NEEDED = {"a=mid:": "a=mid (the section's id)", "a=ice-ufrag:": "a=ice-ufrag (ICE credentials)",
           "a=ice-pwd:": "a=ice-pwd (ICE credentials)", "a=fingerprint:": "a=fingerprint (the DTLS certificate)",
           "a=setup:": "a=setup (the DTLS role)"}
#: The advice that ends every refusal.
ADVICE = "send the offer made by a WebRTC peer's createOffer() with a video and an audio transceiver"


def offer_problem(sdp: str) -> str | None:
    """Why the offer `sdp` cannot be answered (None when its structure is usable)."""
    lines = [line.strip() for line in sdp.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        return f'the SDP offer does not start with "v=0": {ADVICE}'
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    session, media = sections[0], sections[1:]
    kinds = {section[0][2:].split(" ")[0] for section in media}
    if not {"video", "audio"} <= kinds:
        found = ", ".join(sorted(kinds)) or "none"
        return f"the SDP offer needs a video and an audio media section (m=video, m=audio), it has {found}: {ADVICE}"
    for number, section in enumerate(media):
        for prefix, what in _NEEDED.items():
            if not any(line.startswith(prefix) for line in section + (session if prefix != "a=mid:" else [])):
                return f"media section {number} ({section[0][2:].split(' ')[0]}) of the SDP offer has no {what}: {ADVICE}"
    return None
