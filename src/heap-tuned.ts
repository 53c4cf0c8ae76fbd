// Imported first by every entry point, for its effect alone: V8's heap settings are made before
// any other module loads (runtime/heap-tuning.ts says which and why).
import { tuneHeap } from './runtime/heap-tuning';

tuneHeap();
