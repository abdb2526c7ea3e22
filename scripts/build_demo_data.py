"""Builds the demo data shipped in data/demo/ from the full public files (run by hand).

    python scripts/build_demo_data.py --shared ../shared/data --out data/demo

* train_en.json: SQuAD v1.1 dev paragraphs that XQuAD does not use (XQuAD's paragraphs come from
  SQuAD dev, so this keeps evaluation free of training passages), whole paragraphs, up to
  --train-questions questions.
* dev_en.json: the English selection set: whole SQuAD v1.1 dev articles after those train_en.json
  draws from (never XQuAD's paragraphs), up to --dev-questions questions. Not part of the
  tokenizer's training text (added after the tokenizer was built).
* mlqa.<lang>.json / xquad.<lang>.json for en es de ar hi vi zh: the first whole paragraphs of the
  MLQA dev and XQuAD files, up to --eval-questions questions each. XQuAD keeps the same
  question ids across languages (parallel data for the McCrolin demo).
* retrieval/xquad.<lang>.json for en es de ar hi vi zh: the first paragraph of every XQuAD article
  (48 paragraphs, same question ids in every language), for the McCrolin demo, which splits by
  article. Not part of the tokenizer's training text, so adding them left the tokenizer as it was.
* tokenizer/: a sentencepiece unigram model trained on all the demo text, with XLM-R's special
  tokens (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask> last), saved as a transformers fast tokenizer.
"""

import argparse
import io
import json
import os
import tempfile

LANGS = ["en", "es", "de", "ar", "hi", "vi", "zh"]


def slice_paragraphs(data, max_questions, keep=lambda p: True):
    out, n = [], 0
    for article in data["data"]:
        paras = []
        for p in article["paragraphs"]:
            if n >= max_questions:
                break
            if not keep(p):
                continue
            paras.append(p)
            n += len(p["qas"])
        if paras:
            out.append({"title": article.get("title", ""), "paragraphs": paras})
        if n >= max_questions:
            break
    return {"version": data.get("version", ""), "data": out}, n


def dev_slice(squad, train, xquad_contexts, max_questions):
    """Whole articles of ``squad`` after the last one ``train`` draws from, without XQuAD's
    paragraphs: article-disjoint from the training slice."""
    titles = [a["title"] for a in squad["data"]]
    after = titles.index(train["data"][-1]["title"]) + 1
    rest = {"version": squad.get("version", ""), "data": squad["data"][after:]}
    dev, n = slice_paragraphs(rest, max_questions, lambda p: p["context"] not in xquad_contexts)
    train_titles = {a["title"] for a in train["data"]}
    assert not any(a["title"] in train_titles for a in dev["data"])
    return dev, n


def write_dev(shared, out, max_questions=100, train_questions=1200):
    """Writes dev_en.json only (the rest of the demo data stays as it is)."""
    xquad_en = json.load(open(os.path.join(shared, "xquad/xquad.en.json"), encoding="utf-8"))
    xquad_contexts = {p["context"] for a in xquad_en["data"] for p in a["paragraphs"]}
    squad = json.load(open(os.path.join(shared, "squad_v1.1/dev-v1.1.json"), encoding="utf-8"))
    train, _ = slice_paragraphs(squad, train_questions, lambda p: p["context"] not in xquad_contexts)
    dev, n = dev_slice(squad, train, xquad_contexts, max_questions)
    with open(os.path.join(out, "dev_en.json"), "w", encoding="utf-8") as f:
        json.dump(dev, f, ensure_ascii=False, separators=(",", ":"))
    print("dev_en.json", n, "questions")


def xquad_slice(path, question_ids):
    data = json.load(open(path, encoding="utf-8"))
    out = []
    for article in data["data"]:
        paras = [p for p in article["paragraphs"] if any(q["id"] in question_ids for q in p["qas"])]
        if paras:
            out.append({"title": article.get("title", ""), "paragraphs": paras})
    return {"version": data.get("version", ""), "data": out}


def build_tokenizer(texts, out_dir, vocab_size):
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(t.replace("\n", " ") + "\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=corpus, model_writer=model, vocab_size=vocab_size, model_type="unigram",
            character_coverage=0.9995, bos_id=0, pad_id=1, eos_id=2, unk_id=3,
            bos_piece="<s>", pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
            normalization_rule_name="nmt_nfkc", input_sentence_size=2_000_000,
            shuffle_input_sentence=True, seed_sentencepiece_size=200_000, num_threads=2, max_sentence_length=20000)
        sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i) if i > 3 else 0.0) for i in range(sp.get_piece_size())]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=512)
    fast.save_pretrained(out_dir)
    return len(fast)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="data/demo")
    ap.add_argument("--train-questions", type=int, default=1200)
    ap.add_argument("--eval-questions", type=int, default=150)
    ap.add_argument("--dev-questions", type=int, default=100)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--only-dev", action="store_true", help="write dev_en.json only")
    args = ap.parse_args()
    if args.only_dev:
        return write_dev(args.shared, args.out, args.dev_questions, args.train_questions)
    os.makedirs(args.out, exist_ok=True)
    texts = []

    def write(name, data):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        for a in data["data"]:
            for p in a["paragraphs"]:
                texts.append(p["context"])
                texts.extend(q["question"] for q in p["qas"])

    xquad_en = json.load(open(os.path.join(args.shared, "xquad/xquad.en.json"), encoding="utf-8"))
    xquad_contexts = {p["context"] for a in xquad_en["data"] for p in a["paragraphs"]}
    squad = json.load(open(os.path.join(args.shared, "squad_v1.1/dev-v1.1.json"), encoding="utf-8"))
    train, n = slice_paragraphs(squad, args.train_questions, lambda p: p["context"] not in xquad_contexts)
    assert not any(p["context"] in xquad_contexts for a in train["data"] for p in a["paragraphs"])
    write("train_en.json", train)
    print("train_en.json", n, "questions")

    en_slice, _ = slice_paragraphs(xquad_en, args.eval_questions)
    ids = {q["id"] for a in en_slice["data"] for p in a["paragraphs"] for q in p["qas"]}
    for lang in LANGS:
        write(f"xquad.{lang}.json", xquad_slice(os.path.join(args.shared, f"xquad/xquad.{lang}.json"), ids))
        mlqa = json.load(open(os.path.join(args.shared, f"mlqa/dev-context-{lang}-question-{lang}.json"),
                              encoding="utf-8"))
        sliced, n = slice_paragraphs(mlqa, args.eval_questions)
        write(f"mlqa.{lang}.json", sliced)
        print(lang, "xquad", len(ids), "mlqa", n)
    os.makedirs(os.path.join(args.out, "retrieval"), exist_ok=True)
    for lang in LANGS:
        data = json.load(open(os.path.join(args.shared, f"xquad/xquad.{lang}.json"), encoding="utf-8"))
        first = {"version": data.get("version", ""),
                 "data": [{"title": a.get("title", ""), "paragraphs": a["paragraphs"][:1]}
                          for a in data["data"]]}
        with open(os.path.join(args.out, "retrieval", f"xquad.{lang}.json"), "w", encoding="utf-8") as f:
            json.dump(first, f, ensure_ascii=False, separators=(",", ":"))
    size = build_tokenizer(texts, os.path.join(args.out, "tokenizer"), args.vocab_size)
    print("tokenizer", size, "tokens")
    write_dev(args.shared, args.out, args.dev_questions, args.train_questions)


if __name__ == "__main__":
    main()
