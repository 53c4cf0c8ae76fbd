// router 2.x ships no types for its internal symbols module (used by stable-shapes.ts).
declare module 'router/lib/symbols' {
  export const matchedRoute: symbol | undefined;
}
