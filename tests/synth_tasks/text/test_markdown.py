from synth_tasks.text.markdown import plain_text, split_sections
from tests.conftest import DATA

GUIDE = (DATA / "markdown" / "service_guide.md").read_text()


def test_sections_follow_headings_with_their_trail():
    sections = split_sections(GUIDE, min_tokens=30)
    assert [s.title for s in sections] == ["Ingestion Service Guide", "Configuration", "Retries", "Monitoring"]
    assert sections[1].path == ("Ingestion Service Guide", "Configuration")
    assert sections[1].text.startswith("## Configuration")


def test_code_blocks_and_tables_stay_whole_and_hash_lines_in_code_are_not_headings():
    doc = ("# Setup\n\nInstall it first, then configure it with the file below before starting.\n\n"
           "```bash\n# not a heading\npip install thing\n\n# still code\n```\n\n"
           "| a | b |\n|---|---|\n| 1 | 2 |\n")
    sections = split_sections(doc, max_tokens=20, min_tokens=0)
    assert [s.title for s in sections] == ["Setup"] * len(sections)
    texts = [s.text for s in sections]
    assert any(t.startswith("```bash") and t.endswith("```") and "# still code" in t for t in texts)
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in texts


def test_long_sections_are_cut_and_tiny_ones_merged_forward():
    long_body = "\n\n".join(f"Paragraph {i} explains one more detail of the retry policy in full." for i in range(200))
    doc = f"# Tiny\n\nShort.\n\n# Long\n\n{long_body}\n"
    sections = split_sections(doc, max_tokens=300, min_tokens=20)
    assert len(sections) > 3 and all(s.n_tokens <= 320 for s in sections)
    assert sections[0].title == "Tiny" and "Short." in sections[0].text and "Paragraph 0" in sections[0].text


def test_a_document_without_headings_is_one_section():
    sections = split_sections("Just text.\n\nMore text here.", min_tokens=0, default_title="notes")
    assert [(s.title, s.path) for s in sections] == [("notes", ("notes",))]


def test_plain_text_drops_code_tables_headings_and_link_targets():
    text = plain_text("# Title\n\nSee [the docs](http://x/y) and `batch_size`.\n\n```\ncode\n```\n\n| t |\n")
    assert text == "See the docs and batch_size."
