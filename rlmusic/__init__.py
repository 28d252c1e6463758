"""rlmusic: pretrain a character LSTM on ABC tunes, fine-tune it with reinforcement learning, sample and evaluate.

Importing the package changes no global state (environment variables, loggers, TensorFlow or matplotlib
settings); the command line (`python -m rlmusic`) quiets TensorFlow's start-up notices for itself.
"""

__version__ = "0.1.0"
