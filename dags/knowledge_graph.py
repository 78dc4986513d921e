"""
### Knowledge graph: entities and relations → communities and reports → multi-hop QA along graph paths

After Edge et al. 2024, *From Local to Global: A Graph RAG Approach to Query-Focused
Summarization* (arXiv 2404.16130), with HippoRAG-style local retrieval (personalised PageRank).

**Flow**: `prepare` (markdown/text files, text JSONL/Parquet, or the `papers` DAG's
`papers.parquet` → token chunks with overlap) → `extract` (per chunk, entities and relations; JSON
where the endpoint constrains output, else GraphRAG's tuples read by a tolerant parser; gleaning
rounds; LLM) → `graph` (entity resolution keeping aliases and source chunks, description
summaries, networkx graph, seeded hierarchical Leiden; LLM) → `report` (a report per community
with findings citing entity and relationship ids; LLM) → `plan` (2- and 3-hop paths whose edges
come from different chunks, with no shortcut edge, and whose answer is the only entity their
relation types lead to; global jobs) → `generate` (questions along the paths, from each hop's
evidence, and about the reports; LLM) → `check` (answer a real name of the end entity, in the last
hop's chunk; start named, no bridge named, no evidence copied, every hop cited) → `export`.

**Outputs**: `{data root}/knowledge_graph/{partition}/final/` (train/validation grouped so that
every hop chunk lies on one side; records carry question, answer, reasoning steps naming their
chunks, the path's entity ids, relation types and evidence, chunk ids, community; with `no_llm`
the paths are `graph_walk` records without a question) and `final/graph/` with GraphRAG's
`entities.parquet`, `relationships.parquet`, `communities.parquet`, `community_reports.parquet`,
`text_units.parquet` (GraphRAG's documented columns and types, also when empty) and `graph.graphml`.
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.knowledge_graph import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
