"""The course's glossary: every technical term, its Chinese term, a one-line definition, and the chapter
that builds it.

    from fmcourse.glossary import TERMS, search
    search("注意力")             # the terms whose English or Chinese name or definition mention it
    search("lora")[0].chinese   # '低秩适配'

The seed overview is written in Chinese and the course in English: the glossary maps one to the
other. ``Term.pattern`` is what a reader finds in the notebooks (a regular expression, matched
case-insensitively); the tests check that every term occurs in at least one notebook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str
    definition: str  # one line
    chapter: str  # the two-digit number of the chapter that builds or measures it
    pattern: str = ""  # regex found in the notebooks' text; empty: the English term itself

    @property
    def regex(self) -> re.Pattern:
        """The compiled, case-insensitive pattern that finds the term in a text."""
        return re.compile(self.pattern or re.escape(self.english), re.IGNORECASE)


def _t(english: str, chinese: str, chapter: str, definition: str, pattern: str = "") -> Term:
    return Term(english, chinese, definition, chapter, pattern)


TERMS: tuple[Term, ...] = (
    # 01 what a foundation model is
    _t("foundation model", "基础模型", "01", "a model trained on broad data, usually self-supervised at scale, that is adapted "
       "to a wide range of downstream tasks"),
    _t("pretrained model", "预训练模型", "01", "a model whose weights were first trained on a general objective, to be reused "
       "for another task"),
    _t("downstream task", "下游任务", "01", "the task a pretrained model is adapted to after pretraining"),
    _t("transfer learning", "迁移学习", "01", "reusing what a model learned on one task or data set for another"),
    _t("label efficiency", "标签效率", "06", "how much accuracy a method reaches per labelled example; pretraining "
       "should raise it"),
    # 02 losses and backpropagation
    _t("loss function", "损失函数", "02", "a number that measures how wrong the model's outputs are; training minimises it",
       r"loss function|\bloss\b"),
    _t("mean squared error", "均方误差", "02", "the mean of the squared differences between predictions and targets (MSE)"),
    _t("cross-entropy", "交叉熵", "02", "the negative log-probability a model gives the right class, averaged"),
    _t("softmax", "softmax 函数", "02", "exp(z_i) / sum_j exp(z_j): turns scores (logits) into probabilities"),
    _t("logit", "logit（未归一化的对数概率）", "02", "a score before the softmax; the softmax of the logits gives "
       "probabilities"),
    _t("activation function", "激活函数", "02", "the elementwise nonlinearity f in y = f(Wx + b), e.g. tanh or GELU",
       r"activation"),
    _t("weight matrix", "权重矩阵", "02", "the matrix W of a linear layer y = Wx + b"),
    _t("backpropagation", "反向传播", "02", "computing every parameter's gradient by the chain rule, from the loss "
       "backwards"),
    _t("gradient descent", "梯度下降", "02", "repeatedly moving the parameters a small step against the gradient of "
       "the loss"),
    _t("learning rate", "学习率", "02", "the size of a gradient-descent step"),
    _t("gradient check", "梯度检验", "02", "comparing an analytic gradient with a finite-difference estimate",
       r"gradient check|finite difference"),
    _t("overfitting", "过拟合", "04", "fitting the training data better while getting worse on new data",
       r"overfit"),
    # 03 the Transformer
    _t("Transformer", "Transformer（变换器）", "03", "a network of attention and MLP blocks with residual connections "
       "and layer normalisation"),
    _t("self-attention", "自注意力", "03", "each position mixes the values of all positions, weighted by the softmax of "
       "query–key similarities"),
    _t("multi-head attention", "多头注意力", "03", "several attention heads in parallel, each on its own projection",
       r"multi-head"),
    _t("causal mask", "因果掩码", "03", "hides later positions, so that position i attends only to positions 0..i",
       r"causal mask|causal"),
    _t("positional encoding", "位置编码", "03", "what tells attention, which ignores order, where each token is",
       r"positional|position embedding"),
    _t("layer normalisation", "层归一化", "03", "rescaling each token's vector to mean 0 and variance 1, then a learned "
       "scale and shift", r"LayerNorm|layer norm"),
    _t("residual connection", "残差连接", "03", "adding a block's input to its output, x + f(x), so that deep stacks "
       "train", r"residual"),
    _t("embedding", "嵌入", "03", "a learned vector for each token (or an encoder's output vector for an input)"),
    _t("GPT", "GPT（生成式预训练 Transformer）", "03", "a causal Transformer language model that predicts the next "
       "token"),
    _t("encoder", "编码器", "03", "a Transformer that sees the whole input at once (no causal mask), e.g. BERT"),
    _t("parameter count", "参数量", "03", "the number of trained numbers in a model"),
    _t("FLOPs", "浮点运算次数", "03", "floating-point operations; a multiply and an add count as two", r"FLOP"),
    # 04 self-supervised pretraining
    _t("self-supervised learning", "自监督学习", "04", "learning from labels made from the data itself, e.g. the next "
       "word", r"self-supervised"),
    _t("pretraining", "预训练", "04", "training a model on a general objective on much unlabelled data, before "
       "adapting it", r"pretrain"),
    _t("data cleaning", "数据清洗", "04", "removing or fixing what should not be learned from: markup, duplicates, "
       "odd characters", r"clean"),
    _t("tokenizer", "分词器", "04", "turns text into a sequence of token ids and back", r"tokeni[sz]"),
    _t("byte-pair encoding", "字节对编码", "04", "a tokenizer that merges the most frequent pair of symbols again and "
       "again (BPE)", r"BPE|byte-pair"),
    _t("language model", "语言模型", "04", "a model of the probability of text, e.g. of the next token given the "
       "previous ones"),
    _t("causal language modelling", "因果语言建模", "04", "pretraining by predicting each next token from the ones "
       "before it", r"causal[- ]LM|causal language model"),
    _t("masked language modelling", "掩码语言建模", "04", "pretraining by predicting hidden (masked) tokens from both "
       "sides, as BERT does", r"masked[- ]LM|masked language model"),
    _t("perplexity", "困惑度", "04", "exp(loss per token): the number of equally likely tokens the model hesitates "
       "between"),
    _t("entropy", "熵", "04", "the average surprise -log p of a source; no model's loss on it can go below it"),
    _t("sampling temperature", "采样温度", "04", "divides the logits before the softmax: below 1 sharper, above 1 "
       "flatter", r"temperature"),
    # 05 contrastive pretraining
    _t("contrastive learning", "对比学习", "05", "learning representations that bring matching pairs together and push "
       "others apart", r"contrastive"),
    _t("data augmentation", "数据增强", "05", "random changes to an input (crop, blur, noise) that keep its meaning",
       r"augmentation"),
    _t("InfoNCE", "InfoNCE 损失", "05", "cross-entropy of picking the matching pair among many, from similarity "
       "scores divided by a temperature"),
    _t("SimCLR", "SimCLR", "05", "contrastive pretraining of images: two augmentations of one image form a pair"),
    _t("CLIP", "CLIP", "05", "contrastive pretraining of images and their captions; classifies zero-shot by "
       "comparing with texts"),
    _t("zero-shot", "零样本", "05", "doing a task without any labelled example of it"),
    _t("few-shot", "少样本", "06", "doing a task from a handful of labelled examples"),
    _t("linear probe", "线性探测", "05", "a linear classifier trained on a frozen model's features"),
    _t("k-nearest neighbours", "k 近邻", "05", "classify by the majority label of the k most similar training examples",
       r"nearest neighbo"),
    _t("representation", "表示（特征表示）", "05", "the feature vector a model computes for an input"),
    # 06 fine-tuning and evaluation
    _t("fine-tuning", "微调", "06", "continuing to train a pretrained model (all of it or part) on a downstream task",
       r"fine-tun"),
    _t("LoRA", "低秩适配", "06", "fine-tuning a low-rank update W0 + (α/r)BA of frozen weights"),
    _t("catastrophic forgetting", "灾难性遗忘", "06", "losing what pretraining learned while training on a new task",
       r"forgetting"),
    _t("training set", "训练集", "06", "the labelled examples that fit the weights"),
    _t("validation set", "验证集", "06", "held-out examples on which every choice (method, learning rate) is made",
       r"validation"),
    _t("test set", "测试集", "06", "examples used once, at the end, to report what the chosen model does on new data"),
    _t("baseline", "基线", "06", "a simple method every new one must beat, e.g. an n-gram or linear model"),
    _t("n-gram", "n 元语法", "04", "a run of n consecutive tokens or characters; counts of them make a strong simple "
       "baseline", r"n-gram|bigram|trigram"),
    _t("logistic regression", "逻辑回归", "05", "a linear classifier trained with cross-entropy"),
    _t("accuracy", "准确率", "02", "the fraction of examples classified right"),
    _t("macro-F1", "宏平均 F1", "06", "the F1 score of each class, averaged over the classes"),
    _t("confusion matrix", "混淆矩阵", "06", "counts of (true class, predicted class) pairs"),
    _t("calibration", "校准", "06", "whether a model's confidence matches how often it is right (ECE measures the "
       "gap)"),
    _t("sentence embedding", "句向量", "06", "one vector for a whole text, close for texts that mean similar things",
       r"sentence embedding|sentence encoder"),
    _t("semantic search", "语义搜索", "06", "finding the passages whose embeddings are closest to a question's"),
    _t("TF-IDF", "词频-逆文档频率", "06", "a text's word counts weighted by how rare each word is: keyword search's "
       "vectors"),
    _t("cosine similarity", "余弦相似度", "05", "the dot product of two vectors divided by their lengths"),
    # 07 applications: language
    _t("text generation", "文本生成", "07", "producing text token by token from a language model"),
    _t("top-k sampling", "top-k 采样", "07", "sampling the next token among the k most likely only", r"top-k|top_k"),
    _t("nucleus sampling", "核采样（top-p 采样）", "07", "sampling among the fewest tokens whose probabilities add up "
       "to p", r"nucleus|top-p"),
    _t("key/value cache", "键值缓存", "07", "keeping the keys and values of earlier tokens so that each new token "
       "costs one step", r"KV cache|key/value cache"),
    _t("beam search", "束搜索", "07", "keeping the b most likely partial outputs at every step"),
    _t("encoder–decoder", "编码器-解码器", "07", "an encoder reads the source, a decoder writes the target attending "
       "to it (T5, translation)", r"encoder.decoder"),
    _t("machine translation", "机器翻译", "07", "turning text of one language into another", r"translation"),
    _t("BLEU", "BLEU 分数", "07", "a translation score from n-gram precisions against a reference"),
    _t("question answering", "问答", "07", "producing the answer to a question, from a given text or from memory"),
    # 08 applications: vision (the chapter's notebook comes with its own work)
    _t("convolution", "卷积", "08", "a small filter slid over an image, the same weights at every position"),
    _t("ResNet", "残差网络 ResNet", "08", "a deep convolutional network built from residual blocks"),
    _t("object detection", "目标检测", "08", "finding each object in an image: its box and its class"),
    _t("intersection over union", "交并比", "08", "area of overlap of two boxes divided by the area of their union "
       "(IoU)", r"(?-i:\bIoU\b)|intersection over union"),
    _t("non-maximum suppression", "非极大值抑制", "08", "dropping boxes that overlap a more confident box of the same "
       "class (NMS)", r"\bNMS\b|non-maximum suppression"),
    _t("mean average precision", "平均精度均值", "08", "the area under each class's precision–recall curve, averaged "
       "(mAP)", r"(?-i:\bmAP\b)|mean average precision"),
    # 09 applications: speech
    _t("spectrogram", "频谱图", "09", "a sound's energy per frequency over time, from the short-time Fourier "
       "transform"),
    _t("mel spectrogram", "梅尔频谱图", "09", "a spectrogram on the mel scale, which follows the ear's resolution",
       r"\bmel\b|mel[- ]spectrogram"),
    _t("connectionist temporal classification", "连接时序分类", "09", "a loss that sums over every alignment of a "
       "transcript to the audio frames (CTC)", r"\bCTC\b|connectionist temporal classification"),
    _t("word error rate", "词错误率", "09", "word substitutions, deletions and insertions per reference word (WER)",
       r"(?-i:\bWER\b)|word error rate"),
    _t("character error rate", "字错误率", "09", "the same per character (CER)", r"(?-i:\bCER\b)|character error rate"),
    _t("speech recognition", "语音识别", "09", "turning speech into text"),
    _t("speech synthesis", "语音合成", "09", "turning text into speech (Tacotron, then a vocoder such as Griffin-Lim)"),
    # 10 applications: recommendation
    _t("recommender system", "推荐系统", "10", "ranking items for a user from what users did before",
       r"recommend"),
    _t("matrix factorization", "矩阵分解", "10", "users and items as vectors whose dot product predicts a preference",
       r"matrix factori[sz]ation"),
    _t("Recall@k", "召回率@k", "10", "the fraction of relevant items found among the top k recommended"),
    _t("NDCG", "归一化折损累计增益", "10", "a ranking score that counts hits more the higher they are ranked"),
    # 11 scale and efficiency
    _t("scaling law", "缩放定律", "11", "a power law of loss against parameters, data or compute", r"scaling law"),
    _t("training compute", "训练计算量", "11", "about 6·N·D FLOPs to train N parameters on D tokens", r"6\s*·?\s*N\s*·?\s*D|6ND"),
    _t("throughput", "吞吐量", "11", "work done per second: tokens/s or FLOP/s"),
    _t("data parallelism", "数据并行", "11", "copies of the model on several devices, each on part of the batch, "
       "gradients averaged (DDP)", r"data[- ]parallel|DDP"),
    _t("quantization", "量化", "11", "storing weights (and computing) with fewer bits, e.g. int8", r"quanti[sz]"),
    _t("pruning", "剪枝", "11", "removing the weights or units that matter least"),
    _t("knowledge distillation", "知识蒸馏", "11", "training a small student to match a large teacher's outputs",
       r"distil"),
    _t("mixed precision", "混合精度", "11", "computing in 16-bit (bf16) where it is safe and in 32-bit where it is not",
       r"bf16|bfloat16|mixed precision"),
    # 12 trust
    _t("interpretability", "可解释性", "12", "explaining how a model reaches its outputs", r"interpretab"),
    _t("integrated gradients", "积分梯度", "12", "an attribution: gradients averaged along a path from a baseline input "
       "to the input"),
    _t("activation patching", "激活修补", "12", "copying an activation from one run into another to test what it "
       "carries"),
    _t("social bias", "偏见", "12", "systematic differences in how a model treats groups of people",
       r"social bias|gender bias|\bbiase[sd]\b"),
    _t("fairness", "公平性", "12", "whether a model's errors and outcomes are comparable across groups"),
    _t("worst-group accuracy", "最差组准确率", "12", "the accuracy on the group where the model does worst"),
    _t("membership inference", "成员推断", "12", "guessing whether an example was in the training data"),
    _t("differential privacy", "差分隐私", "12", "a guarantee that one example changes the trained model's output "
       "distribution only a little (DP-SGD)", r"differential privacy|DP-SGD"),
)


def search(query: str, terms: tuple[Term, ...] = TERMS) -> list[Term]:
    """The terms whose English or Chinese name, definition or chapter contain ``query`` (case-insensitive).

    An empty query returns every term. English names that match come first, then Chinese, then the rest.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    q = query.strip().casefold()
    if not q:
        return list(terms)
    ranked = []
    for term in terms:
        if q in term.english.casefold():
            ranked.append((0, term))
        elif q in term.chinese.casefold():
            ranked.append((1, term))
        elif q in term.definition.casefold() or q == term.chapter:
            ranked.append((2, term))
    return [term for _, term in sorted(ranked, key=lambda rank_term: rank_term[0])]


def markdown_table(terms: list[Term] | tuple[Term, ...] = TERMS) -> str:
    """The glossary as a Markdown table: English, Chinese, definition, chapter."""
    rows = ["| English | 中文 | what it is | chapter |", "|---|---|---|---|"]
    rows += [f"| {t.english} | {t.chinese} | {t.definition} | {t.chapter} |" for t in terms]
    return "\n".join(rows)
