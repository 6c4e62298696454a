"""A tiny random-init BERT (+ WordPiece tokenizer) written to a temp folder, so tests need no real encoder."""

from __future__ import annotations

import random

import pytest

from models.request_load.data import LengthExample

WORDS = ("short long story list code poem explain write summarize translate answer essay give one word "
         "please the a of and to in for model llama gpt 7b 13b chat hf vicuna").split()


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz0123456789",
             *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789")]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


def synthetic_examples(n: int, seed: int = 0) -> list[LengthExample]:
    """Length depends on the prompt ('long' vs 'short') and on the model, so a model can learn it."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        long = rng.random() < 0.5
        model = rng.choice(["llama-2-7b-chat-hf", "gpt-3.5"])
        base = (600 if long else 40) * (1.5 if model.startswith("llama") else 1.0)
        words = " ".join(rng.choice(WORDS[:14]) for _ in range(rng.randint(3, 12)))
        prompt = f"{'write a long essay' if long else 'give one word'} {words} {i}"
        out.append(LengthExample(prompt=prompt, output_tokens=float(round(base * rng.uniform(0.8, 1.2))),
                                 prompt_tokens=len(prompt.split()), model=model, source="synthetic"))
    return out
