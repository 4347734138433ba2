"""The field in numbers and the reading list: well-known foundation models with their sizes, and the
papers, books, courses and tools of the seed's section 7, each paper with the chapter that implements it.

    from fmcourse.references import MODELS, PAPERS
    gpt3 = model("GPT-3")        # year 2020, 175e9 parameters, trained on 300e9 tokens, with sources

Every number carries its source: the paper, and where in it the number stands. A number that a
paper does not state but that follows from what it states (CLIP's parameter count from its
architecture table) says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FoundationModel:
    name: str
    year: int  # of the first public paper or preprint
    parameters: float  # total trained parameters
    modality: str  # "language", "vision", "image–text", "speech"
    source: str  # the paper and where it gives the parameter count
    training_tokens: float | None = None  # tokens seen in pretraining, where the paper gives them
    reported_flops: float | None = None  # total training compute the paper reports
    note: str = ""  # e.g. a mixture of experts, whose tokens each use only part of the parameters


MODELS: tuple[FoundationModel, ...] = (
    FoundationModel("GPT-1", 2018, 117e6, "language",
                    "Radford et al., 'Language models are unsupervised multitask learners' (GPT-2), 2019, Table 2: "
                    "the smallest model, 117M parameters, is the size of the original GPT (Radford et al., 2018)"),
    FoundationModel("BERT-Large", 2018, 340e6, "language",
                    "Devlin et al., 'BERT: pre-training of deep bidirectional Transformers for language "
                    "understanding', NAACL 2019 (arXiv 1810.04805), section 3: BERT-LARGE, 340M parameters"),
    FoundationModel("GPT-2", 2019, 1542e6, "language",
                    "Radford et al., 'Language models are unsupervised multitask learners', 2019, Table 2: 1542M"),
    FoundationModel("T5-11B", 2019, 11e9, "language",
                    "Raffel et al., 'Exploring the limits of transfer learning with a unified text-to-text "
                    "Transformer', JMLR 2020 (arXiv 1910.10683), section 3.7: the model with 11 billion parameters"),
    FoundationModel("GPT-3", 2020, 175e9, "language",
                    "Brown et al., 'Language models are few-shot learners', NeurIPS 2020 (arXiv 2005.14165), "
                    "Table 2.1: 175.0B parameters; section 2.2: 300 billion training tokens; Table D.1: "
                    "3.14e23 FLOPs of training compute",
                    training_tokens=300e9, reported_flops=3.14e23),
    FoundationModel("ViT-H/14", 2020, 632e6, "vision",
                    "Dosovitskiy et al., 'An image is worth 16x16 words: Transformers for image recognition at "
                    "scale', ICLR 2021 (arXiv 2010.11929), Table 1: ViT-Huge, 632M"),
    FoundationModel("DALL-E", 2021, 12e9, "image–text",
                    "Ramesh et al., 'Zero-shot text-to-image generation', ICML 2021 (arXiv 2102.12092), section 1: "
                    "a 12-billion parameter autoregressive Transformer"),
    FoundationModel("CLIP ViT-L/14", 2021, 428e6, "image–text",
                    "Radford et al., 'Learning transferable visual models from natural language supervision', "
                    "ICML 2021 (arXiv 2103.00020), Table 20: image Transformer of 24 layers of width 1024 with "
                    "14-pixel patches, text Transformer of 12 layers of width 768 (vocabulary 49,408, context 77); "
                    "the paper gives no total, 428M is counted from these sizes"),
    FoundationModel("Chinchilla", 2022, 70e9, "language",
                    "Hoffmann et al., 'Training compute-optimal large language models', NeurIPS 2022 "
                    "(arXiv 2203.15556), Table 1: 70B parameters, 1.4 trillion training tokens",
                    training_tokens=1.4e12),
    FoundationModel("PaLM", 2022, 540e9, "language",
                    "Chowdhery et al., 'PaLM: scaling language modeling with Pathways', JMLR 2023 "
                    "(arXiv 2204.02311), Table 1: 540B parameters; section 3: 780 billion training tokens",
                    training_tokens=780e9),
    FoundationModel("Whisper large", 2022, 1550e6, "speech",
                    "Radford et al., 'Robust speech recognition via large-scale weak supervision', ICML 2023 "
                    "(arXiv 2212.04356), Table 1: large, 1550M"),
    FoundationModel("LLaMA-65B", 2023, 65.2e9, "language",
                    "Touvron et al., 'LLaMA: open and efficient foundation language models', 2023 "
                    "(arXiv 2302.13971), Table 2: 65.2B parameters, 1.4T tokens",
                    training_tokens=1.4e12),
    FoundationModel("Llama 3 405B", 2024, 405e9, "language",
                    "Llama Team, 'The Llama 3 herd of models', 2024 (arXiv 2407.21783), section 1: 405B "
                    "parameters trained on 15.6T text tokens with 3.8e25 FLOPs",
                    training_tokens=15.6e12, reported_flops=3.8e25),
    FoundationModel("DeepSeek-V3", 2024, 671e9, "language",
                    "DeepSeek-AI, 'DeepSeek-V3 technical report', 2024 (arXiv 2412.19437), abstract: 671B total "
                    "parameters, 37B activated for each token, 14.8 trillion training tokens",
                    training_tokens=14.8e12, note="mixture of experts: each token uses 37B of the 671B parameters"),
)


def model(name: str) -> FoundationModel:
    """The entry of ``MODELS`` called ``name`` (e.g. ``"GPT-3"``)."""
    for m in MODELS:
        if m.name == name:
            return m
    raise ValueError(f"no model {name!r} in fmcourse.references.MODELS; there are: {', '.join(m.name for m in MODELS)}")


# --- the reading list (seed section 7) ----------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    title: str
    by: str  # authors or publisher, and year / venue
    what: str  # why read it, in a line
    chapter: str = ""  # the chapter that implements it (papers); empty for books, courses and tools
    in_seed: bool = False  # named in the seed's section 7 (the rest came since, or fill a gap)


PAPERS: tuple[Reading, ...] = (
    Reading("Attention is all you need", "Vaswani et al., NeurIPS 2017", "the Transformer", "03", in_seed=True),
    Reading("BERT: pre-training of deep bidirectional Transformers for language understanding",
            "Devlin et al., NAACL 2019", "masked-language-model pretraining of an encoder", "04", in_seed=True),
    Reading("Zero-shot text-to-image generation (DALL-E)", "Ramesh et al., ICML 2021",
            "images generated from text, token by token", "08", in_seed=True),
    Reading("On the opportunities and risks of foundation models", "Bommasani et al., 2021 (arXiv 2108.07258)",
            "the report that named foundation models", "01"),
    Reading("Improving language understanding by generative pre-training (GPT-1)", "Radford et al., 2018",
            "pretrain a causal language model, then fine-tune it", "04"),
    Reading("Language models are few-shot learners (GPT-3)", "Brown et al., NeurIPS 2020",
            "scale, and tasks from a prompt alone", "13"),
    Reading("A simple framework for contrastive learning of visual representations (SimCLR)",
            "Chen et al., ICML 2020", "contrastive pretraining of images", "05"),
    Reading("Learning transferable visual models from natural language supervision (CLIP)",
            "Radford et al., ICML 2021", "images and captions in one space; zero-shot classification", "05"),
    Reading("LoRA: low-rank adaptation of large language models", "Hu et al., ICLR 2022",
            "fine-tuning a low-rank update", "06"),
    Reading("Sentence-BERT: sentence embeddings using Siamese BERT-networks", "Reimers & Gurevych, EMNLP 2019",
            "the family of the course's real sentence encoder", "06"),
    Reading("Exploring the limits of transfer learning with a unified text-to-text Transformer (T5)",
            "Raffel et al., JMLR 2020", "every task as text to text", "07"),
    Reading("The curious case of neural text degeneration", "Holtzman et al., ICLR 2020",
            "nucleus (top-p) sampling", "07"),
    Reading("Deep residual learning for image recognition (ResNet)", "He et al., CVPR 2016",
            "residual connections", "08"),
    Reading("You only look once: unified, real-time object detection (YOLO)", "Redmon et al., CVPR 2016",
            "single-stage detection", "08"),
    Reading("Connectionist temporal classification", "Graves et al., ICML 2006",
            "the CTC loss of speech recognition", "09"),
    Reading("Tacotron: towards end-to-end speech synthesis", "Wang et al., Interspeech 2017",
            "text to spectrogram", "09"),
    Reading("Self-attentive sequential recommendation (SASRec)", "Kang & McAuley, ICDM 2018",
            "next-item prediction with a Transformer", "10"),
    Reading("Matrix factorization techniques for recommender systems", "Koren, Bell & Volinsky, IEEE Computer 2009",
            "the classic recommender baseline", "10"),
    Reading("Scaling laws for neural language models", "Kaplan et al., 2020 (arXiv 2001.08361)",
            "loss as a power law of size, data and compute; C ≈ 6ND", "11"),
    Reading("Training compute-optimal large language models (Chinchilla)", "Hoffmann et al., NeurIPS 2022",
            "about 20 tokens per parameter", "11"),
    Reading("Distilling the knowledge in a neural network", "Hinton, Vinyals & Dean, 2015 (arXiv 1503.02531)",
            "a small student learns from a large teacher", "11"),
    Reading("Axiomatic attribution for deep networks (integrated gradients)", "Sundararajan et al., ICML 2017",
            "attributions with guarantees", "12"),
    Reading("Deep learning with differential privacy (DP-SGD)", "Abadi et al., CCS 2016",
            "training with a privacy guarantee", "12"),
    Reading("Membership inference attacks against machine learning models", "Shokri et al., IEEE S&P 2017",
            "was this example in the training data?", "12"),
)

BOOKS: tuple[Reading, ...] = (
    Reading("Deep Learning (《深度学习》)", "Goodfellow, Bengio & Courville, MIT Press 2016",
            "the foundations: optimisation, regularisation, networks", in_seed=True),
    Reading("Speech and Language Processing", "Jurafsky & Martin, 3rd edition draft (online)",
            "natural language processing (《自然语言处理》), now with Transformers and LLMs", in_seed=True),
    Reading("Computer Vision: Algorithms and Applications", "Szeliski, 2nd edition, Springer 2022",
            "computer vision (《计算机视觉》), classical and deep", in_seed=True),
    Reading("Dive into Deep Learning (《动手学深度学习》)", "Zhang, Lipton, Li & Smola, Cambridge 2023 (d2l.ai)",
            "runnable notebooks, in English and Chinese"),
    Reading("Understanding Deep Learning", "Prince, MIT Press 2023", "modern deep learning with clear figures"),
    Reading("Deep Learning: Foundations and Concepts", "Bishop & Bishop, Springer 2024",
            "the probabilistic view, up to Transformers and diffusion"),
)

COURSES: tuple[Reading, ...] = (
    Reading("Coursera, edX, Udacity", "platforms", "the seed's suggestion: course platforms", in_seed=True),
    Reading("CS224N: Natural Language Processing with Deep Learning", "Stanford", "lectures and assignments"),
    Reading("CS231n: Deep Learning for Computer Vision", "Stanford", "lectures and assignments"),
    Reading("CS336: Language Modeling from Scratch", "Stanford", "building and training a language model"),
    Reading("Practical Deep Learning for Coders", "fast.ai", "top-down and practical"),
    Reading("Hugging Face LLM Course", "Hugging Face", "using and fine-tuning pretrained models with its libraries"),
)

TOOLS: tuple[Reading, ...] = (
    Reading("PyTorch", "framework", "what this course is written in", in_seed=True),
    Reading("TensorFlow", "framework", "Google's framework, with Keras", in_seed=True),
    Reading("Python", "language", "the language of the field", in_seed=True),
    Reading("AWS, Google Cloud, Azure", "cloud platforms", "rented GPUs", in_seed=True),
    Reading("JAX", "framework", "composable transformations (grad, jit, vmap) of NumPy programs"),
    Reading("Hugging Face Transformers, PEFT, sentence-transformers", "libraries",
            "pretrained models, LoRA and its relatives, sentence encoders (chapters 04 and 06 use them)"),
    Reading("torchrun and FSDP, DeepSpeed", "libraries", "training on many GPUs (chapter 11)"),
    Reading("vLLM, llama.cpp", "inference engines", "serving large language models, on GPUs or CPUs"),
    Reading("Colab, Binder", "notebooks in the browser", "how this course runs without installing anything"),
    Reading("GitHub", "code hosting", "the seed's suggestion; where the course lives", in_seed=True),
    Reading("Papers with Code", "website", "the seed's suggestion: papers linked to their code and results",
            in_seed=True),
    Reading("arXiv, Hugging Face Papers and Hub", "websites", "preprints; papers with their models and data sets"),
)
