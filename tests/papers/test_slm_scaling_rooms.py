"""The shared rooms slm_scaling grew: exact word times from libespeak-ng, page-ordered documents."""

from __future__ import annotations

import pytest

from reprolab.data import tts


@pytest.fixture(scope="module")
def espeak():
    if not tts.espeak_available():
        pytest.skip("libespeak-ng is not installed (make assets)")


def test_word_times_from_espeak_events(espeak):
    text = "Pulse el botón Aceptar para cerrar el diálogo. Luego, guarde el documento."
    u = tts.speak_with_word_times(text, "es", cache=False)
    assert "".join(w.text for w in u.words) == text
    starts = [w.start for w in u.words]
    assert starts[0] == 0.0 and starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(w.end == n.start for w, n in zip(u.words, u.words[1:])) and abs(u.words[-1].end - u.seconds) < 0.01
    # a sentence break adds a pause: "diálogo." lasts longer than the short "el" before it
    assert (u.words[7].end - u.words[7].start) > 2 * (u.words[6].end - u.words[6].start)
    # speaking the first half alone gives the same word starts (times are espeak's own, not aligned)
    half = tts.speak_with_word_times("Pulse el botón Aceptar", "es", cache=False)
    assert [round(w.start, 3) for w in half.words[:3]] == [round(s, 3) for s in starts[:3]]


def test_perturbed_voice_scales_times(espeak, tmp_path):
    u = tts.speak_with_word_times("Hola mundo, buenos días.", "es", variant="f2", cache=False)
    fast = tts.perturb(u, tts.Perturbation(speed=1.25, pitch_cents=200))
    assert abs(fast.seconds - u.seconds / 1.25) < 0.05
    assert abs(fast.words[-1].start - u.words[-1].start / 1.25) < 1e-6
    p = fast.save_wav(tmp_path / "x.wav")
    audio, rate = tts.read_wav(p)
    assert rate == 16_000 and len(audio) == len(fast.audio)


def test_documents_keep_page_order(tmp_path, monkeypatch):
    from reprolab.data import speech_text

    a = ["Zeta es la primera frase de la página.", "Alfa viene después en esta misma página.", "Media frase cierra la página uno."]
    b = ["Otra página empieza con esta frase larga.", "Zeta es la primera frase de la página.", "Una segunda frase de la otra página."]
    c = ["Una página corta con una sola frase."]
    for name, sents in (("a.html", a), ("b.html", b), ("c.html", c)):
        (tmp_path / name).write_text("<html><body><p>" + " ".join(sents) + "</p><script>x = 1;</script></body></html>")
    monkeypatch.setitem(speech_text.SOURCES, ("es", "libreoffice"), ("libreoffice-help-es", str(tmp_path), "*.html"))
    docs = speech_text.documents("es", "libreoffice", min_sentences=2)
    assert docs == [a, [b[0], b[2]]]  # page order kept (not sorted), repeated sentence dropped, short page dropped
    assert speech_text.documents("es", "libreoffice", min_sentences=1)[-1] == c
