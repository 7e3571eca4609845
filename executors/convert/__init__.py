"""Conversions run by model build scripts (`inferhook models build`), never at serving time.

    torch_checkpoint.py  torch.save files (zip and legacy) -> numpy arrays, without torch
    ctranslate2.py       CTranslate2 model.bin files -> numpy arrays, without ctranslate2
"""
