# Cascade partners (§5.1, §A.5): the options and inputs that name a local partner or the served RAG partner.
# Kept beside cascade.smk, which includes it (rule files hold rules only).

PARTNER_SPECS = {p["name"]: p for p in CASCADE["partners"]}


def rag_knowledge(wildcards):
    """The RAG partner's articles (§A.5): our corpus or a file such as FactScore's dump; none for a local partner."""
    rag = PARTNER_SPECS[wildcards.partner].get("rag")
    if rag is None:
        return []
    return knowledge_input(rag["knowledge"])


def partner_options(wildcards, input):
    """`lacy cascade` options naming the partner: a local model, or the served RAG partner of §A.5."""
    spec = PARTNER_SPECS[wildcards.partner]
    options = f"--partner {spec['model']}"
    rag = spec.get("rag")
    if rag:
        options += (f" --rag-base-url {rag['base_url']} --rag-knowledge {knowledge_option(input.knowledge)}"
                    " --cache-dir results/llm_cache")
        if rag.get("api_key_env"):
            options += f" --api-key-env {rag['api_key_env']}"
        if rag.get("top_logprobs"):
            options += f" --partner-top-k {rag['top_logprobs']}"
    return options
