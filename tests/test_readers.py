"""The lhotse and kaldi corpus kinds, and segments (an utterance that is part of a file): each
kind is read and validated, the audio loaded for a segment is its slice of the file, bad
entries are named with their file and line or id, and `--corpus` folders are recognized."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from lhotse import (
    AudioSource,
    CutSet,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)
from pydantic import ValidationError

from experiments.config import ExperimentConfig
from lightning_modules.data.corpora import corpus_from_path, corpus_section
from lightning_modules.data.datamodule import SpeechDataset
from lightning_modules.data.manifest import CorpusError, Utterance, read_manifest
from lightning_modules.data.readers.kaldi_dirs import KaldiCorpus, read_kaldi_dir
from lightning_modules.data.readers.lhotse_manifests import LhotseCorpus
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.data.validation import validate_corpus

RATE = 16_000
SPLIT_OF = {"a": "train", "b": "dev", "c": "test"}
"""Recording → split, in the fixtures."""


def noise(path: Path, seconds: float, seed: int = 0) -> np.ndarray:
    """A file of distinct samples (so that any slice is recognizable); returns them as read."""
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE))
    soundfile.write(path, wave, RATE, subtype="PCM_16")
    return soundfile.read(path, dtype="float32")[0]


def loaded(utterances: list[Utterance]) -> dict[str, np.ndarray]:
    """The audio training reads for each utterance (through the dataset)."""
    dataset = SpeechDataset(utterances, CharTokenizer())
    return {
        item["id"]: item["audio"].numpy() for item in map(dataset.__getitem__, range(len(dataset)))
    }


def audio_files(folder: Path) -> dict[str, np.ndarray]:
    """Three 2-second recordings a, b, c (FLAC) in `folder`; their samples."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: noise(folder / f"{name}.flac", 2.0, seed) for seed, name in enumerate("abc")}


def supervisions_of() -> list[SupervisionSegment]:
    """Per recording: one supervision over 0.5-1.5 s, and for `a` one over the whole of it."""
    found = [
        SupervisionSegment(
            f"{r}-part", r, start=0.5, duration=1.0, text=f"Part of {r}.", speaker=f"spk-{r}"
        )
        for r in "abc"
    ]
    return [
        *found,
        SupervisionSegment("a-all", "a", start=0.0, duration=2.0, text="All of A", speaker="spk-a"),
    ]


def lhotse_manifests(folder: Path, suffix: str = ".jsonl.gz") -> dict[str, dict[str, str]]:
    """Per split, a recordings and a supervisions manifest; returns the section's splits."""
    audio_files(folder / "audio")
    section = {}
    for split in ("train", "dev", "test"):
        names = [r for r, s in SPLIT_OF.items() if s == split]
        recordings = RecordingSet.from_recordings(
            Recording.from_file(folder / "audio" / f"{name}.flac") for name in names
        )
        supervisions = SupervisionSet.from_segments(
            s for s in supervisions_of() if s.recording_id in names
        )
        recordings.to_file(folder / f"{split}_recordings{suffix}")
        supervisions.to_file(folder / f"{split}_supervisions{suffix}")
        section[split] = {
            "recordings": str(folder / f"{split}_recordings{suffix}"),
            "supervisions": str(folder / f"{split}_supervisions{suffix}"),
        }
    return section


EXPECTED = {
    # id: (split, normalized text, offset, duration)
    "a-part": ("train", "part of a", 0.5, 1.0),
    "a-all": ("train", "all of a", 0.0, 2.0),
    "b-part": ("dev", "part of b", 0.5, 1.0),
    "c-part": ("test", "part of c", 0.5, 1.0),
}


def check_read(utterances: list[Utterance], samples: dict[str, np.ndarray]) -> None:
    """The utterances are EXPECTED's, and each loads exactly its slice of its recording."""
    utterances = validate_corpus(utterances)
    found = {u.id: (u.split, u.text, u.offset, u.duration) for u in utterances}
    assert found.keys() == EXPECTED.keys()
    for uid, (split, text, offset, duration) in EXPECTED.items():
        assert found[uid][:2] == (split, text)
        assert found[uid][2:] == pytest.approx((offset, duration))
    assert {u.id: u.meta["speaker"] for u in utterances}["b-part"] == "spk-b"
    audio = loaded(utterances)
    for uid, (_, _, offset, duration) in EXPECTED.items():
        recording = samples[uid[0]]
        start = round(offset * RATE)
        np.testing.assert_array_equal(audio[uid], recording[start : start + round(duration * RATE)])


# --- lhotse -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_lhotse_recordings_and_supervisions(tmp_path: Path, suffix: str) -> None:
    section = corpus_section({"kind": "lhotse", **lhotse_manifests(tmp_path, suffix)})
    check_read(section.read(), audio_files_read(tmp_path))


def audio_files_read(folder: Path) -> dict[str, np.ndarray]:
    return {
        name: soundfile.read(folder / "audio" / f"{name}.flac", dtype="float32")[0]
        for name in "abc"
    }


def write_cuts(folder: Path, trim: bool) -> dict[str, list[dict[str, str]]]:
    """Per split, a cuts manifest (whole recordings, or trimmed to their supervisions)."""
    manifests = lhotse_manifests(folder)
    section = {}
    for split, paths in manifests.items():
        cuts = CutSet.from_manifests(
            recordings=RecordingSet.from_file(paths["recordings"]),
            supervisions=SupervisionSet.from_file(paths["supervisions"]),
        )
        if trim:
            cuts = cuts.trim_to_supervisions(keep_overlapping=False)
        cuts.to_file(folder / f"{split}_cuts.jsonl.gz")
        section[split] = [{"cuts": str(folder / f"{split}_cuts.jsonl.gz")}]
    return section


@pytest.mark.parametrize("trim", [False, True], ids=["whole", "trimmed"])
def test_lhotse_cuts(tmp_path: Path, trim: bool) -> None:
    section = corpus_section({"kind": "lhotse", **write_cuts(tmp_path, trim)})
    check_read(section.read(), audio_files_read(tmp_path))


def test_lhotse_refusals_are_named_with_manifest_line_and_id(tmp_path: Path) -> None:
    manifests = lhotse_manifests(tmp_path, ".jsonl")
    train = manifests["train"]
    (a,) = RecordingSet.from_file(train["recordings"])
    piped = Recording(
        "piped",
        [AudioSource("command", [0], "sox a.flac -t wav - |")],
        RATE,
        a.num_samples,
        a.duration,
    )
    remote = Recording(
        "remote",
        [AudioSource("url", [0], "https://example.org/a.flac")],
        RATE,
        a.num_samples,
        a.duration,
    )
    RecordingSet.from_recordings([a, piped, remote]).to_file(train["recordings"])
    supervisions = [
        SupervisionSegment("a-part", "a", 0.5, 1.0, text="Part of a."),
        SupervisionSegment("silent", "a", 0.0, 1.0, text="  "),
        SupervisionSegment("p", "piped", 0.0, 1.0, text="piped"),
        SupervisionSegment("r", "remote", 0.0, 1.0, text="remote"),
        SupervisionSegment("lost", "nowhere", 0.0, 1.0, text="lost"),
    ]
    SupervisionSet.from_segments(supervisions).to_file(train["supervisions"])
    with open(train["supervisions"], "a") as out:
        out.write("{not json\n")
    with pytest.raises(CorpusError, match="5 problem") as error:
        corpus_section({"kind": "lhotse", **manifests}).read()
    message = str(error.value)
    sup, rec = train["supervisions"], train["recordings"]
    assert f"{sup}:2: supervision 'silent' has no text" in message
    assert f"{rec}:2: recording 'piped' is read from a command ('sox a.flac -t wav - |'" in message
    assert (
        f"{rec}:3: recording 'remote' is read from a url ('https://example.org/a.flac'" in message
    )
    assert (
        f"{sup}:5: supervision 'lost': recording 'nowhere' is not in {train['recordings']}"
        in message
    )
    assert f"{sup}:6: not valid JSON" in message


def test_lhotse_cuts_that_are_not_one_file_as_it_is_are_refused(tmp_path: Path) -> None:
    section = write_cuts(tmp_path, trim=True)
    path = section["train"][0]["cuts"]
    cuts = list(CutSet.from_file(path))
    cuts = [cuts[0], cuts[1].perturb_speed(1.1), cuts[0].pad(duration=3.0)]
    CutSet.from_cuts(cuts).to_file(path)
    with pytest.raises(CorpusError) as error:
        corpus_section({"kind": "lhotse", **section}).read()
    message = str(error.value)
    assert f"{path}:2: cut '{cuts[1].id}': recording 'a_sp1.1' has transforms (Speed)" in message
    assert f"{path}:3: cut '{cuts[2].id}' is a MixedCut; only MonoCut" in message


def test_lhotse_supervision_sticking_out_of_its_cut_is_refused(tmp_path: Path) -> None:
    section = write_cuts(tmp_path, trim=False)
    path = section["dev"][0]["cuts"]
    (cut,) = CutSet.from_file(path)
    CutSet.from_cuts([cut.truncate(duration=1.0, keep_excessive_supervisions=True)]).to_file(path)
    with pytest.raises(CorpusError, match=f"{path}:1: supervision 'b-part' .* sticks out of cut"):
        corpus_section({"kind": "lhotse", **section}).read()


def test_lhotse_audio_problems_are_found_by_validation(tmp_path: Path) -> None:
    manifests = lhotse_manifests(tmp_path)
    (tmp_path / "audio" / "b.flac").unlink()
    sup = manifests["test"]["supervisions"]
    SupervisionSet.from_segments(
        [SupervisionSegment("c-late", "c", 1.5, 1.0, text="late")]
    ).to_file(sup)
    with pytest.raises(CorpusError, match="2 problem") as error:
        validate_corpus(corpus_section({"kind": "lhotse", **manifests}).read())
    message = str(error.value)
    assert f"{tmp_path / 'audio' / 'b.flac'}: audio file missing (utterance b-part)" in message
    assert (
        f"{tmp_path / 'audio' / 'c.flac'}: segment of utterance c-late (1.500-2.500 s) runs past "
        "the end of the file (2.000 s)"
    ) in message


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ({"cuts": "c.jsonl", "recordings": "r.jsonl"}, "give either `cuts`, or `recordings`"),
        ({"recordings": "r.jsonl"}, "give `cuts`, or both `recordings` and `supervisions`"),
        ({"cuts": "c.json"}, "expected a lhotse manifest ending in .jsonl or .jsonl.gz"),
        ({"cuts": "c.jsonl", "features": "f.jsonl"}, "train.0.features: Extra inputs"),
        ([], "train: Value should have at least 1 item"),
    ],
)
def test_lhotse_section_schema(split: object, expected: str) -> None:
    raw = {
        "kind": "lhotse",
        "train": split,
        "dev": {"cuts": "d.jsonl"},
        "test": {"cuts": "t.jsonl"},
    }
    with pytest.raises(ValueError, match="kind lhotse: ") as error:
        corpus_section(raw)
    assert expected in str(error.value)


def test_lhotse_section_takes_a_mapping_or_a_list() -> None:
    section = corpus_section(
        {
            "kind": "lhotse",
            "train": [{"cuts": "a.jsonl.gz"}, {"recordings": "r.jsonl", "supervisions": "s.jsonl"}],
            "dev": {"cuts": "d.jsonl"},
            "test": {"cuts": "t.jsonl"},
        }
    )
    assert isinstance(section, LhotseCorpus)
    assert [m.cuts for m in section.train] == [Path("a.jsonl.gz"), None]
    assert section.dev[0].cuts == Path("d.jsonl")


# --- kaldi --------------------------------------------------------------------------------


def write_kaldi(root: Path, segments: bool) -> dict[str, str]:
    """A recipe's data/ folder: train, dev and test Kaldi data directories."""
    audio_files(root / "audio")
    for split in ("train", "dev", "test"):
        folder = root / split
        folder.mkdir(parents=True)
        names = [r for r, s in SPLIT_OF.items() if s == split]
        (folder / "wav.scp").write_text("".join(f"{n} {root / 'audio' / n}.flac\n" for n in names))
        rows = [s for s in supervisions_of() if s.recording_id in names]
        if not segments:
            rows = [s for s in rows if s.id == "a-all" or s.recording_id != "a"]
            rows = [
                SupervisionSegment(
                    s.recording_id, s.recording_id, 0, 2, text=s.text, speaker=s.speaker
                )
                for s in rows
            ]
        (folder / "text").write_text("".join(f"{s.id} {s.text}\n" for s in rows))
        (folder / "utt2spk").write_text("".join(f"{s.id} {s.speaker}\n" for s in rows))
        if segments:
            (folder / "segments").write_text(
                "".join(f"{s.id} {s.recording_id} {s.start:.2f} {s.end:.2f}\n" for s in rows)
            )
    return {split: str(root / split) for split in ("train", "dev", "test")}


def test_kaldi_with_segments(tmp_path: Path) -> None:
    section = corpus_section({"kind": "kaldi", **write_kaldi(tmp_path, segments=True)})
    assert isinstance(section, KaldiCorpus)
    check_read(section.read(), audio_files_read(tmp_path))


def test_kaldi_without_segments_reads_whole_files(tmp_path: Path) -> None:
    utterances = validate_corpus(
        corpus_section({"kind": "kaldi", **write_kaldi(tmp_path, segments=False)}).read()
    )
    assert [(u.id, u.split, u.text, u.offset, u.duration) for u in utterances] == [
        ("a", "train", "all of a", None, 2.0),
        ("b", "dev", "part of b", None, 2.0),
        ("c", "test", "part of c", None, 2.0),
    ]
    assert [u.meta["speaker"] for u in utterances] == ["spk-a", "spk-b", "spk-c"]
    samples = audio_files_read(tmp_path)
    for uid, audio in loaded(utterances).items():
        np.testing.assert_array_equal(audio, samples[uid])


def test_kaldi_segment_to_the_end_of_the_file(tmp_path: Path) -> None:
    dirs = write_kaldi(tmp_path, segments=True)
    (Path(dirs["dev"]) / "segments").write_text("b-part b 0.25 -1\n")
    (utterance,) = validate_corpus(read_kaldi_dir(dirs["dev"], "dev"), required_splits=["dev"])
    assert (utterance.offset, utterance.duration) == (0.25, 1.75)
    samples = audio_files_read(tmp_path)["b"]
    np.testing.assert_array_equal(loaded([utterance])["b-part"], samples[4000:])


def test_kaldi_problems_are_named_with_file_and_line(tmp_path: Path) -> None:
    dirs = write_kaldi(tmp_path, segments=True)
    train = Path(dirs["train"])
    wav_scp = (train / "wav.scp").read_text()
    (train / "wav.scp").write_text(wav_scp + "piped flac -c -d -s $(ls x.flac) |\n")
    (train / "text").write_text("a-part Part of a.\na-all\nghost Not anywhere\nx-part in x\n")
    (train / "segments").write_text(
        "a-part a 0.50 1.50\na-all a 0 2\nx-part x 0 1\nuntold a 0 1\nbackwards a 1 0.5\n"
    )
    (train / "utt2spk").write_text("a-part spk-a\na-all spk-a\n")
    with pytest.raises(CorpusError) as error:
        read_kaldi_dir(train, "train")
    message = str(error.value)
    for line in [
        f"{train}/wav.scp:2: recording 'piped' is a command that is not read "
        "('flac -c -d -s $(ls x.flac) |'): it holds a shell construct",
        f"{train}/segments:3: recording 'x' of utterance 'x-part' is not in {train}/wav.scp",
        f"{train}/segments:4: no transcript for 'untold' in {train}/text",
        f"{train}/segments:5: segment 'backwards' from 1.0 s to 0.5 s",
        f"{train}/segments:5: no transcript for 'backwards' in {train}/text",
        f"{train}/text:2: empty transcript for utterance 'a-all'",
        f"{train}/text:3: utterance 'ghost' is not in {train}/segments",
    ]:
        assert line in message
    assert message.startswith(f"7 problem(s) in {train}:")


@pytest.mark.parametrize(
    "pipe",
    [
        "flac -c -d -s {} |",  # Kaldi's LibriSpeech recipe
        "flac --decode --stdout --silent {} |",
        "sox {} -t wav - |",
        "ffmpeg -threads 1 -i {} -ar 16000 -map_channel 0.0.0  -f wav -threads 1 pipe:1 |",
    ],
    ids=["flac", "flac-long", "sox", "ffmpeg"],
)
def test_kaldi_decoder_pipes_read_the_file_they_decode(tmp_path: Path, pipe: str) -> None:
    dirs = write_kaldi(tmp_path, segments=True)
    for folder in dirs.values():
        wav_scp = Path(folder) / "wav.scp"
        entries = [line.split(maxsplit=1) for line in wav_scp.read_text().splitlines()]
        wav_scp.write_text("".join(f"{key} {pipe.format(path)}\n" for key, path in entries))
    section = corpus_section({"kind": "kaldi", **dirs})
    check_read(section.read(), audio_files_read(tmp_path))


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("flac -c -d -s a.flac; rm -rf x |", "it holds a shell construct"),
        ("flac -c -d -s $(cat list) |", "it holds a shell construct"),
        ("sph2pipe a.sph -f wav | ffmpeg -i pipe:0 pipe:1 |", "it holds a shell construct"),
        ("cat a.wav |", "only flac, sox and ffmpeg decoder pipes are recognized"),
        ("flac -s a.flac |", "a flac pipe decodes one file to standard output"),
        ("sox a.flac -t wav - remix 1 |", "a sox pipe converts one file to standard output"),
        ("ffmpeg -i a.flac -map_channel 0.0.1 pipe:1 |", "it selects channel '0.0.1'"),
    ],
)
def test_kaldi_commands_that_are_not_one_decoder_are_refused_with_their_line(
    tmp_path: Path, command: str, why: str
) -> None:
    dirs = write_kaldi(tmp_path, segments=True)
    train = Path(dirs["train"])
    with (train / "wav.scp").open("a") as out:
        out.write(f"piped {command}\n")
    with pytest.raises(CorpusError) as error:
        read_kaldi_dir(train, "train")
    assert f"{train}/wav.scp:2: recording 'piped' is a command that is not read " in str(
        error.value
    )
    assert why in str(error.value)


def test_lhotse_export_to_kaldi_is_read_back(tmp_path: Path) -> None:
    """lhotse's own Kaldi export (ffmpeg pipes for FLAC audio) reads as its manifests do."""
    from lhotse.kaldi import export_to_kaldi

    manifests = lhotse_manifests(tmp_path, ".jsonl")
    dirs = {}
    for split, files in manifests.items():
        dirs[split] = str(tmp_path / "kaldi" / split)
        export_to_kaldi(
            RecordingSet.from_file(files["recordings"]),
            SupervisionSet.from_file(files["supervisions"]),
            dirs[split],
        )
    assert "pipe:1 |" in (Path(dirs["train"]) / "wav.scp").read_text()
    via_kaldi = corpus_section({"kind": "kaldi", **dirs}).read()
    check_read(via_kaldi, audio_files_read(tmp_path))
    via_lhotse = corpus_section({"kind": "lhotse", **manifests}).read()
    assert sorted(u.id for u in via_kaldi) == sorted(u.id for u in via_lhotse)


def test_kaldi_without_segments_missing_text_and_speaker(tmp_path: Path) -> None:
    dirs = write_kaldi(tmp_path, segments=False)
    dev = Path(dirs["dev"])
    (dev / "wav.scp").write_text(
        f"b {tmp_path}/audio/b.flac\nc {tmp_path}/audio/c.flac\nb x.flac\n"
    )
    (dev / "text").write_text("b Part of b.\nd Not recorded.\n")
    (dev / "utt2spk").write_text("d spk-d\n")
    with pytest.raises(CorpusError) as error:
        read_kaldi_dir(dev, "dev")
    message = str(error.value)
    assert f"{dev}/wav.scp:3: duplicate id 'b' (first on line 1)" in message
    assert f"{dev}/wav.scp:2: no transcript for 'c' in {dev}/text" in message
    assert f"{dev}/text:1: utterance 'b' has no speaker in {dev}/utt2spk" in message
    assert f"{dev}/text:2: utterance 'd' is not in {dev}/wav.scp" in message


def test_kaldi_audio_problems_are_found_by_validation(tmp_path: Path) -> None:
    dirs = write_kaldi(tmp_path, segments=True)
    (tmp_path / "audio" / "a.flac").unlink()
    (Path(dirs["dev"]) / "segments").write_text("b-part b 1.5 2.5\n")
    (Path(dirs["test"]) / "segments").write_text("c-part c 1.5 2.01\n")  # rounding: cut at 2 s
    with pytest.raises(CorpusError, match="3 problem") as error:
        validate_corpus(corpus_section({"kind": "kaldi", **dirs}).read())
    message = str(error.value)
    assert f"{tmp_path}/audio/a.flac: audio file missing (utterance a-part)" in message
    assert f"{tmp_path}/audio/a.flac: audio file missing (utterance a-all)" in message
    assert (
        f"{tmp_path}/audio/b.flac: segment of utterance b-part (1.500-2.500 s) runs past the "
        "end of the file (2.000 s)"
    ) in message
    (c,) = validate_corpus(read_kaldi_dir(dirs["test"], "test"), required_splits=["test"])
    assert c.duration == pytest.approx(0.5)


def test_kaldi_missing_directory_or_files(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="Kaldi data directory not found"):
        read_kaldi_dir(tmp_path / "absent", "dev")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "wav.scp").write_text("")
    with pytest.raises(CorpusError, match=r"half: no text \(split 'dev'\)"):
        read_kaldi_dir(tmp_path / "half", "dev")


def test_kaldi_section_in_an_experiment_config(tmp_path: Path) -> None:
    corpus = {"kind": "kaldi", "train": "data/train", "dev": ["data/dev"], "test": "data/test"}
    config = ExperimentConfig.model_validate({"name": "x", "corpus": corpus})
    assert isinstance(config.corpus, KaldiCorpus)
    assert config.corpus.train == [Path("data/train")]
    with pytest.raises(
        ValidationError, match="kind kaldi: segments: Extra inputs are not permitted"
    ):
        ExperimentConfig.model_validate({"name": "x", "corpus": {**corpus, "segments": "s"}})
    with pytest.raises(ValidationError, match="kind kaldi: test: Field required"):
        ExperimentConfig.model_validate(
            {"name": "x", "corpus": {"kind": "kaldi", "train": "t", "dev": "d"}}
        )


# --- the manifest kind's segments, and `--corpus` detection --------------------------------


def test_manifest_offset_makes_a_segment(tmp_path: Path) -> None:
    samples = audio_files(tmp_path / "audio")
    rows = [
        {
            "id": "a1",
            "audio": "audio/a.flac",
            "text": "one",
            "split": "train",
            "offset": 0.25,
            "duration": 0.5,
        },
        {"id": "a2", "audio": "audio/a.flac", "text": "two", "split": "train", "offset": 1.5},
        {"id": "b", "audio": "audio/b.flac", "text": "three", "split": "dev", "duration": 9.0},
        {"id": "c", "audio": "audio/c.flac", "text": "four", "split": "test", "duration": 1.0},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    utterances = validate_corpus(read_manifest(manifest))
    # Without an offset, `duration` is informative: the whole file is read, as before.
    assert [(u.offset, u.duration) for u in utterances] == [
        (0.25, 0.5),
        (1.5, 0.5),
        (None, 2.0),
        (None, 2.0),
    ]
    audio = loaded(utterances)
    np.testing.assert_array_equal(audio["a1"], samples["a"][4000:12000])
    np.testing.assert_array_equal(audio["a2"], samples["a"][24000:])
    np.testing.assert_array_equal(audio["c"], samples["c"])
    manifest.write_text("".join(json.dumps({**row, "duration": 1e-5}) + "\n" for row in rows[:2]))
    with pytest.raises(CorpusError, match="2 problem") as error:
        validate_corpus(read_manifest(manifest), required_splits=["train"])
    assert "segment of utterance a1 is shorter than one sample (1e-05 s)" in str(error.value)
    manifest.write_text(json.dumps({**rows[0], "offset": -1}) + "\n")
    with pytest.raises(CorpusError, match=":1: field 'offset' is -1, not a number >= 0"):
        read_manifest(manifest)


def test_corpus_from_path_finds_each_layout(tmp_path: Path) -> None:
    write_kaldi(tmp_path / "kaldi", segments=True)
    assert corpus_from_path(tmp_path / "kaldi") == {
        "kind": "kaldi",
        **{split: [str(tmp_path / "kaldi" / split)] for split in ("train", "dev", "test")},
    }
    lhotse_manifests(tmp_path / "pairs", ".jsonl")
    found = corpus_from_path(tmp_path / "pairs")
    assert found == {"kind": "lhotse", **lhotse_manifests_section(tmp_path / "pairs", ".jsonl")}
    check_read(corpus_section(found).read(), audio_files_read(tmp_path / "pairs"))
    write_cuts(tmp_path / "cuts", trim=True)
    found = corpus_from_path(tmp_path / "cuts")  # cuts are taken over recordings+supervisions
    assert found == {
        "kind": "lhotse",
        **{
            split: {"cuts": str(tmp_path / "cuts" / f"{split}_cuts.jsonl.gz")}
            for split in ("train", "dev", "test")
        },
    }
    check_read(corpus_section(found).read(), audio_files_read(tmp_path / "cuts"))
    (tmp_path / "cuts" / "dev_cuts.jsonl").write_text("")
    with pytest.raises(CorpusError, match="both dev_cuts.jsonl and dev_cuts.jsonl.gz; keep one"):
        corpus_from_path(tmp_path / "cuts")
    (tmp_path / "kaldi" / "test" / "text").unlink()
    with pytest.raises(CorpusError, match="not a corpus this project reads") as error:
        corpus_from_path(tmp_path / "kaldi")
    assert "kaldi: Kaldi data directories" in str(error.value)
    assert "lhotse: Lhotse manifests per split" in str(error.value)


def lhotse_manifests_section(folder: Path, suffix: str) -> dict[str, dict[str, str]]:
    return {
        split: {
            what: str(folder / f"{split}_{what}{suffix}") for what in ("recordings", "supervisions")
        }
        for split in ("train", "dev", "test")
    }
