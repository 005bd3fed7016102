"""Special token ids shared by the tokenizer, the model and decoding (fixed everywhere)."""

PAD_ID = 0
SOS_ID = 1
EOS_ID = 2
UNK_ID = 3
# Speaker markers that join the turns of a dialogue context: the person the model answers,
# and the model itself.
USER_ID = 4
BOT_ID = 5

SPECIAL_TOKENS = ("<pad>", "<sos>", "<eos>", "<unk>", "<user>", "<bot>")
