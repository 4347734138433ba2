"""fmcourse: the companion package of the course "Foundation models, built".

Modules, ground floor first (a module imports only from floors below it):

0. ``env``, ``chapters``                   device, seeds, versions; the course map
1. ``data``                                corpora, downloads, synthetic worlds, batches
2. ``tokenizers``, ``objectives``, ``metrics``
3. ``nn``                                  attention, Transformer blocks, positional encodings
4. ``models``                              GPT, encoder, ...
5. ``train``, ``checkpoints``, ``finetune``, ``export``, ``interpret``, ``fairness``, ``privacy``
6. ``pretrain``, ``viz``, ``widgets``, ``exercises``
"""

__version__ = "0.1.0"
