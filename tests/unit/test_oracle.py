"""The test oracle (`chaos.oracle`) names every file the demo generator writes, and nothing else:
if the generator changes, this fails before a process test blames the daemon."""

from __future__ import annotations

from chaos.oracle import DEMO_VIEW, demo_view
from musicfs.demo import DemoLibrary


def test_the_oracle_names_every_generated_track_and_cover_once(demo_library: DemoLibrary) -> None:
    generated = sorted(str(path) for path in (*(t.path for t in demo_library.tracks), *demo_library.covers))
    named = sorted({str(path) for path in demo_view(demo_library.root).values()})
    assert named == generated
    shown_twice = [v for v in DEMO_VIEW if list(DEMO_VIEW.values()).count(DEMO_VIEW[v]) > 1]
    assert shown_twice == [  # only a cover, also under the name MPD looks for
        "Sigur Rós/Ágætis byrjun (1999)/folder.jpg",
        "Sigur Rós/Ágætis byrjun (1999)/cover.jpg",
    ]
